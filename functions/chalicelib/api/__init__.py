"""HTTP API: route groups as Chalice blueprints, all declared through ``routing.api_route``."""
