# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service control for the aitbc.ops.service module: stdlib only, shipped to and run on managed hosts.

base.py holds the spec, the error and the backend base class; one backend per module (process, systemd,
supervisor, docker, sysv); registry.py lists them in their auto-detection order; manage.py is the module's
entry point (manage_service). Import from the submodules: this package re-exports nothing.
"""
