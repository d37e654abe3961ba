"""Authentication: token verification and the route authorizer."""
