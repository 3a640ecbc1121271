"""Community Autopilot domain library, shipped to every function as a Lambda layer.

One sub-package per capability (``scheduler``, ``posts``, ``channels``, ``config``),
each with pure rules, a store and a service; small shared plumbing
(``clock``, ``timeutil``, ``errors``, ``aws``) sits beside them.
"""

__version__ = "0.1.0"
