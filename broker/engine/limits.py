"""The domain's fixed limits on one request, which every protocol (and the console) applies."""

MAX_DELAY = 3600  # seconds a sent message may be delayed
MAX_POLL = 30  # seconds a receive may wait (long poll)
MAX_BATCH = 16  # messages per batch send, receive or delete
MAX_PEEK = 100  # messages one peek may show (a cmq-broker extension)
