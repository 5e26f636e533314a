"""What a call is attributed to: the context fields and their rules, scopes, the file and Redis stores, the resolver."""
