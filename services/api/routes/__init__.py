"""The query API's routes, one module per concern; ``services.api.app`` includes them."""
