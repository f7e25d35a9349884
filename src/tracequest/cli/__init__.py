"""The `tracequest` command: one module per command family, and the parser they share.

``main`` assembles the families (``lab``, ``traces``, ``backends``, ``quests``,
``doctor``); ``parser`` holds what they share and ``options`` the knob and
port options made from the knob table.

May import anything in the library; nothing imports it but ``__main__``.
"""

from tracequest.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
