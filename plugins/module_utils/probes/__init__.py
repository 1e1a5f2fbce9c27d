# -*- coding: utf-8 -*-
# Copyright: (c) 2025, aitbc-ops developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes for the aitbc.ops.health module and the service module's health gate.

Stdlib only (no requests, no redis client, no psutil) and nothing from Ansible: shipped to managed hosts.
base.py holds the Probe class, its errors and option coercion; one module per probe family (http, network,
host, backup) and the JSON conditions of http probes; registry.py knows the types, builds the module's
argument_spec from them and runs probes. Import from the submodules: this package re-exports nothing.
"""
