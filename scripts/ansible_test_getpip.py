"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test creates every virtual environment it uses (the --venv controller
venv, one venv per sanity test, the units venv) with ``python -m venv
--without-pip`` and then bootstraps pip into it with get-pip.py, which it
downloads from https://ci-files.testing.ansible.com/ansible-test/get-pip-<ver>.py
(ansible_test/_util/target/setup/requirements.py, bootstrap()).  That host is
not reachable from our machines, but bootstrap() first looks for a cached copy
at ~/.ansible/test/cache/get_pip_<ver>.py (the documented work-around, see
https://github.com/ansible/ansible/issues/77304).  scripts/ansible-test.sh
copies this file to that path, so nothing in site-packages is patched.

How it is called: ansible-test runs ``<venv>/bin/python quiet_pip.py
--disable-pip-version-check pip==<ver> [--no-setuptools] [--no-wheel]`` with
GET_PIP=<this file>; quiet_pip.py then executes this file in-process as
``__main__`` with those arguments in sys.argv[1:].

What it does, each step in its own interpreter (subprocess), because we are
running inside quiet_pip's process, whose logging and sys.path have already
been altered, and pip must not be imported into a process that installs it:

1. ``python -m ensurepip --upgrade --default-pip``: installs the pip wheel
   bundled with the interpreter (no network needed);
2. ``python -m pip install --upgrade <the requested pip==ver and options>``:
   moves to the exact pip version ansible-test pins (from PyPI / the
   configured index, like the real get-pip.py does);
3. if ``--no-setuptools`` / ``--no-wheel`` was passed and ensurepip brought
   setuptools (Python <= 3.11 bundles it) or wheel, uninstall it again, so the
   venv matches what the real get-pip.py produces.

Exit status is non-zero if any step fails, so ansible-test reports the error.
"""

# ANSIBLE-TEST-LOCAL-GETPIP (marker: scripts/ansible-test.sh only overwrites cache files containing it)

import os
import subprocess
import sys

GETPIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel", "--no-pip")


def log(message):
    """Print a progress line to stderr (ansible-test shows it at verbosity 0)."""
    sys.stderr.write(f"local get-pip: {message}\n")
    sys.stderr.flush()


def run(cmd, env):
    """Run cmd, showing its output only if it fails (then exit with its status)."""
    log(" ".join(cmd))
    process = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)

    if process.returncode != 0:
        sys.stderr.write(process.stdout.decode("utf-8", "replace"))
        log(f"command failed with status {process.returncode}")
        sys.exit(process.returncode)


def has_module(name, env):
    """Return True if the target interpreter can import the named distribution's top-level module."""
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) else 1)"
    return subprocess.call([sys.executable, "-c", code], env=env) == 0


def main():
    """Bootstrap pip into the interpreter running this script."""
    args = sys.argv[1:]
    no_setuptools = "--no-setuptools" in args
    no_wheel = "--no-wheel" in args
    pip_args = [arg for arg in args if arg not in GETPIP_ONLY_OPTIONS]

    if not [arg for arg in pip_args if not arg.startswith("-")]:
        pip_args.append("pip")  # plain "python get-pip.py": install the latest pip

    env = os.environ.copy()
    env.pop("GET_PIP", None)  # only meaningful to quiet_pip.py, not to pip itself

    had_setuptools = has_module("setuptools", env)
    had_wheel = has_module("wheel", env)

    run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], env)
    run([sys.executable, "-m", "pip", "install", "--upgrade"] + pip_args, env)

    remove = []

    if no_setuptools and not had_setuptools and has_module("setuptools", env):
        remove.append("setuptools")

    if no_wheel and not had_wheel and has_module("wheel", env):
        remove.append("wheel")

    if remove:
        run([sys.executable, "-m", "pip", "uninstall", "--yes", "--disable-pip-version-check"] + remove, env)


if __name__ == "__main__":
    main()
