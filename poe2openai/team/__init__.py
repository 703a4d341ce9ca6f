"""A gateway a team shares: client keys issued by the gateway and a pool of Poe keys."""
