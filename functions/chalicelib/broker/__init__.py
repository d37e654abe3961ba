"""The control plane's side of the MQTT broker: credential admin and publishing."""

from .dynsec import BrokerAdminError, DynsecAdmin
from .publisher import BrokerUnavailable, Publisher, Subscriber

__all__ = ["BrokerAdminError", "BrokerUnavailable", "DynsecAdmin", "Publisher", "Subscriber"]
