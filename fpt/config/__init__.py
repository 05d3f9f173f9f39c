"""Configs: finding and composing them (composition), the folders and plugins a command adds (extensions), the command
line every subcommand parses (args), the option schemas (schema, sections), the model kinds, the freeze groups, and
which code a saved config may name (trust).

The composing and command-line functions are importable from here (`from fpt.config import compose`).
"""

from fpt.config.args import (CFG_PARTS, OUT_KEYS, CommandLine, add_config_dirs, check_out_dir, command_line,  # noqa: F401
                             show_config)
from fpt.config.composition import (GROUPS, LIST_KEYS, MULTIRUN_FLAGS, check_groups, choices, compose, config_dir,  # noqa: F401
                                    find_config, is_multirun, one_line, parse_overrides, pop_arg, resolved, rewrite,
                                    search_path, sweep_points)
from fpt.config.extensions import add_config_dir, config_dirs  # noqa: F401
