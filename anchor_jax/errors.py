"""The one base class of user errors.

A ``UserError`` is something the user can fix (a config value, a dataset, a checkpoint, a
file given on the command line). Every command-line tool prints its message as one line
on stderr and exits with status 2 (``anchor_jax.tools.cli``); anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
  """A problem the user can fix; the message says what is wrong and how to fix it."""
