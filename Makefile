# Rampart: `make demo` and `make test` each do all set-up on a fresh machine
# (a virtualenv in .venv, the package and its test tools, and any system
# packages the tests need, installed with apt when missing).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
DEMO   ?= replay_data/sensor_faults
# Debian packages the test suite needs: the tests start their own brokers and
# servers on free loopback ports (never the machine's own services).
SYSTEM_PACKAGES ?= mosquitto mosquitto-clients rsyslog rsyslog-gnutls openssl

.PHONY: demo demo-attack test lint format bench venv system-packages clean regen-replay-data lock sbom

venv: $(STAMP)

# Dependencies come from requirements.lock, every file pinned by hash
# (pip --require-hashes); the project itself is then installed without them.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve the dependencies of pyproject.toml (with the test extra) and pin
# every file by hash. Review the diff of requirements.lock before committing.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet pip-tools
	.venv-lock/bin/pip-compile --quiet --extra test --generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml
	rm -rf .venv-lock

# A CycloneDX software bill of materials of what the venv holds.
sbom: $(STAMP)
	$(BIN)/python -m pip install --quiet cyclonedx-bom
	$(BIN)/cyclonedx-py environment --output-format JSON --output-file sbom.cdx.json $(VENV)
	@echo "SBOM: sbom.cdx.json"

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

demo: $(STAMP)
	$(BIN)/rampart replay $(DEMO) --fast --alerts-out out/demo-alerts.jsonl --report out/demo-report
	@echo
	@echo "alerts: out/demo-alerts.jsonl   report: out/demo-report/index.html"

# A coordinated attack (GNSS jamming, a drone approach, an EMP-like burst on both
# feeds), simulated afresh (a few seconds), replayed through the whole pipeline and
# scored against the simulation's truth.
demo-attack: $(STAMP)
	rm -rf out/attack
	$(BIN)/rampart simulate coordinated --seed 2 --duration 240 --out out/attack
	$(BIN)/rampart replay out/attack --fast --alerts-out out/attack-alerts.jsonl \
		--tracks-out out/attack-tracks.parquet --report out/attack-report 2>/dev/null
	$(BIN)/rampart score out/attack out/attack-alerts.jsonl --tracks out/attack-tracks.parquet --summary
	@echo
	@echo "alerts: out/attack-alerts.jsonl   report (map, timeline, power): out/attack-report/index.html"

# Two workers: much of the suite waits on real time (live replays at real pace,
# broker outages), so the second core runs other files meanwhile.
test: $(STAMP) system-packages
	$(BIN)/ruff check fusion drivers tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check fusion drivers tests benchmarks
	$(BIN)/ruff format --check fusion drivers tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format fusion drivers tests benchmarks
	$(BIN)/ruff check --fix fusion drivers tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/replay_speed.py

# Regenerate replay_data/ recordings and their expected alerts, on purpose (review the diff).
regen-replay-data: $(STAMP)
	$(BIN)/python replay_data/regenerate.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
