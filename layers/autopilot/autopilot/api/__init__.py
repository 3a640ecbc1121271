"""The HTTP API's request side: who is calling (``auth``) and what they sent (``requests``).

Handlers stay thin: they parse with these helpers, call one service method and
shape the answer; every refusal is a :class:`autopilot.errors.RequestError`
mapped to a status in one exception handler.
"""
