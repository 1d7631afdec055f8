"""The ``userengage`` catalog's own code: User.com (formerly UserEngage) requests and its embedded stand-in.

``requests`` builds the REST bodies every transport sends; ``store`` owns the stand-in's schema
and attribute definitions, ``app`` applies requests to it as User.com would (per Segment's
documentation of the destination), ``inspect`` reads it, ``server`` serves it as User.com's
REST API and ``cli`` is the ``switchyard workspace users|user|companies|company|events`` side.
See docs/userengage.md.
"""
