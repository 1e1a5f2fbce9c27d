# The two commands: `make demo` and `make test`. Both set up what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEELHOUSE := .work/wheelhouse
DEB_PACKAGES := openssh-server openssh-client redis-server sqlite3 supervisor iproute2 procps cron \
	debootstrap systemd-container docker.io python3-cryptography chromium nginx memcached \
	prometheus prometheus-alertmanager redmine redmine-sqlite python3-prometheus-client jq
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: demo test setup deb-deps lint sanity units clean demo-down

# The main job on the embedded default (inventory/local.yml): start the demo stack, take a verified
# backup (the heartbeat checks its freshness), run the heartbeat, kill the coordinator, and watch the
# next heartbeat open an incident, restart it and resolve it.
demo: setup
	$(BIN)/opsrunner demo up
	$(BIN)/opsrunner backup
	$(BIN)/opsrunner backups list
	$(BIN)/opsrunner heartbeat
	@echo "--- kill -9 coordinator-api, then the next heartbeat (incidents open at the first failure here)"
	kill -9 $$(cat .state/demo/run/coordinator-api.pid)
	$(BIN)/opsrunner heartbeat -e heartbeat_failure_threshold=1
	$(BIN)/opsrunner incidents list
	$(BIN)/opsrunner memory show --last 3

demo-down: setup
	$(BIN)/opsrunner demo down

test: setup
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=25

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=collections $(BIN)/lint-imports --no-cache
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --offline --profile production
	$(BIN)/antsibull-changelog lint

sanity: setup
	bash scripts/ansible-test.sh sanity

units: setup
	bash scripts/ansible-test.sh units

setup: deb-deps $(VENV)/.installed $(WHEELHOUSE)/.done

# Wheels of ansible-core and the collection's requirements, so tests can build a clean venv offline.
$(WHEELHOUSE)/.done: $(VENV)/.installed requirements.txt
	mkdir -p $(WHEELHOUSE)
	$(BIN)/python -m pip wheel -q -w $(WHEELHOUSE) -r requirements.txt \
	  "ansible-core==$$($(BIN)/python -c 'import ansible; print(ansible.__version__)')"
	touch $@

# Debian packages, installed only when missing and only as root (others get a clear hint). The tests run
# redis-server, nginx and memcached themselves: a policy-rc.d (exit 101) keeps the install from starting
# their Debian services (on port 6379, 80, 11211, 9090, 9093) where the machine has none. Redmine is
# preseeded for SQLite (its own database, migrated by the install); the tests start it as www-data.
deb-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\n# aitbc-ops make deb-deps: no daemon starts during the install\nexit 101\n' >/usr/sbin/policy-rc.d; \
	      chmod 755 /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	    fi; \
	    printf '%s\n' 'redmine redmine/current-instances string default' \
	      'redmine redmine/instances/default/dbconfig-install boolean true' \
	      'redmine redmine/instances/default/database-type select sqlite3' | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages (install as root): $$missing"; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .work .state *.egg-info
