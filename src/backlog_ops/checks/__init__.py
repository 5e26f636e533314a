"""Static checks of a user's code (direct provider calls that bypass the gateway)."""
