"""How every command-line tool parses its flags and reports user errors.

Each tool defines its absl flags on a fresh ``flags.FlagValues`` per call (so tools can
be run in-process, as the tests do, and never clash over flag names), and a tool that
takes an experiment config defines it with ``ml_collections.config_flags``: then
``--config=FILE[:ARG] --config.key=value`` means the same in every tool.

A reporting tool prints a text report for people by default and, with ``--json``
(``define_json``), one JSON object for scripts; ``report`` picks which.

``run`` turns a user error (``anchor_jax.errors.UserError``, a bad flag, an unreadable
file) into one line ``error: ...`` on stderr and exit status 2; anything else is a bug
and keeps its traceback.

  def define_flags(fv, argv): flags.DEFINE_string("workdir", None, "...", flag_values=fv)
  def main(fv, args) -> int: ...
  def run(argv=None) -> int: return cli.run(define_flags, main, argv, doc=__doc__)

and the entry module ``anchor_jax/<tool>.py`` calls ``sys.exit(<tool>.run())``.
"""
from __future__ import annotations

import json
import sys
from typing import Callable

from absl import flags, logging
from ml_collections import config_flags

from anchor_jax import config_lib
from anchor_jax.errors import UserError

USAGE_STATUS = 2
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")

DefineFlags = Callable[[flags.FlagValues, list], None]
Main = Callable[[flags.FlagValues, list], int]


class UsageError(UserError):
  """Flags that do not fit together (e.g. neither --workdir nor --boxes given)."""


def one_line(message) -> str:
  """A message on one line: its lines joined with '; ' (indentation dropped)."""
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  return "; ".join(lines).replace(":;", ":")


def fail(message) -> int:
  """Prints ``error: message`` (one line) on stderr; returns the usage exit status."""
  print(f"error: {one_line(message)}", file=sys.stderr)
  return USAGE_STATUS


def define_config(fv: flags.FlagValues, argv: list, *, name: str = "config",
                  help_string: str = "Experiment config: path/to/config.py[:variant].",
                  required: bool = False) -> None:
  """The ``--config`` flag of ml_collections (with ``--config.key=value`` overrides)."""
  config_flags.DEFINE_config_file(name, None, help_string, flag_values=fv, lock_config=True,
                                  sys_argv=list(argv))
  if required:
    flags.mark_flag_as_required(name, flag_values=fv)


def define_json(fv: flags.FlagValues) -> None:
  """``--json``: print one JSON object (what scripts read) instead of the text report."""
  flags.DEFINE_bool("json", False, "Print one JSON object (for scripts) instead of the "
                    "text report.", flag_values=fv)


def report(fv: flags.FlagValues, data: dict, text: Callable[[dict], str]) -> None:
  """Prints ``data`` as one JSON line with ``--json``, else ``text(data)``."""
  print(json.dumps(data) if fv.json else text(data))


def config_value(fv: flags.FlagValues, name: str = "config"):
  """The parsed config of flag ``name`` (None if not given); a config file that failed to
  load raises ConfigError with the reason on one line."""
  return config_lib.loaded(fv[name].value)


def given_flags(fv: flags.FlagValues) -> list[str]:
  """The flags given on the command line, as ``--name=value`` (repeated for multi flags),
  to record the command that made a file."""
  out = []
  for name in sorted(fv):
    flag = fv[name]
    if flag.present and name == flag.name:
      values = flag.value if isinstance(flag.value, list) else [flag.value]
      out += [f"--{name}={v}" for v in values]
  return out


def run(define_flags: DefineFlags, main: Main, argv=None, *, doc: str = "") -> int:
  """Parses ``argv`` (the arguments after the program name; default ``sys.argv[1:]``) into
  a fresh FlagValues and calls ``main(fv, positional_args)``; returns the exit status."""
  argv = [sys.argv[0]] + list(sys.argv[1:] if argv is None else argv)
  fv = flags.FlagValues()
  define_flags(fv, argv)
  if any(arg in HELP_FLAGS for arg in argv[1:]):
    print(doc.strip() + "\n\nFlags:\n" + fv.get_help())
    return 0
  try:
    rest = fv(argv)
  except (flags.Error, AttributeError, KeyError, ValueError) as e:
    return fail(config_lib.parse_error_message(e, argv) + " (see --help)")
  # absl logging writes to stderr; mark the global flags parsed so it does not warn.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  try:
    return int(main(fv, rest[1:]) or 0)
  except UserError as e:
    return fail(e)
  except OSError as e:   # a file given on the command line that cannot be read or written
    return fail(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else e)
