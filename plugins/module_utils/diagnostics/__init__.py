# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident bundle collection for the aitbc.ops.diagnostics module.

Shipped to managed hosts, so the Python standard library only and nothing from Ansible. Everything is
read from ``/proc`` (and ``statvfs``); lsof, netstat and ss are not needed. Only ``journalctl`` and
``systemctl`` are ever run, and only when a service names a systemd unit.

One collector per section over a shared context (``context.HostContext``: the options and /proc access):
``system`` (load, cpu, memory, disk), ``sockets``, ``processes``, ``logs``, ``restarts``. ``collect``
combines them into ``Collector`` and runs the requested sections together, each in its own daemon
thread, against one shared deadline (``section_timeout``). A section that raises, or is still running
``DEADLINE_GRACE`` seconds after the deadline, is reported as ``{"error": "..."}``; the other sections
are unaffected. Loops that can grow with the host (process and fd scans, mounts, sockets) also check the
deadline themselves and return what they have, marked ``complete: false``.

Entry point: ``collect.collect(services, include, log_lines, restarts_file, section_timeout)`` returns
``{"diagnostics": {...}, "summary": "...", "msg": "..."}``; ``summary`` renders the human summary and
``options`` validates the input, raising ``DiagnosticsError`` (a one-line message for the user).
"""
