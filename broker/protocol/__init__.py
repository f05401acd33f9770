"""Wire protocols: each a thin layer that decodes a request, calls the engine, renders a reply."""
