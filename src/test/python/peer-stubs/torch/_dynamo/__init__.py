"""torch._dynamo stand-in (see torch/__init__.py): its config only."""


class config:
    recompile_limit = 8
