"""The agent suite's real fixtures (private mosquitto, agents on temp dirs, the demo image)."""

from agent.conftest import broker, demo_image, harness_factory  # noqa: F401
