# Community Autopilot — developer entry points. `make demo` and `make test` set
# everything up themselves on a fresh machine (Python 3.12 via pyenv or PATH).

export PYENV_VERSION ?= 3.12.1
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY ?= 0
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_START ?= 2027-03-08T00:00:00Z

.PHONY: setup browser schema demo test test-moved-clock test-moved-clock-shanghai test-moved-clock-new-york lint format validate build deploy bench faults clean

$(STAMP): requirements-dev.txt layers/autopilot/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## Regenerate config/schema.json from the typed config (autopilot.config.document);
## a test fails when the committed file is stale.
schema: setup
	$(BIN)/python -m autopilot.config.schema

## A simulated week of the example config on the embedded moto backend.
demo: setup
	$(BIN)/autopilot config validate config/communities.yaml
	$(BIN)/autopilot schedule preview --config config/communities.yaml --from $(DEMO_START) --days 1
	$(BIN)/autopilot simulate --config config/communities.yaml --start $(DEMO_START) \
		--days 7 --members 200 --seed 7 --out out/demo

## Debian's Chromium (and CJK fonts for its screenshots), which the report's browser
## tests (tests/integration/test_report_browser.py) run headless: installed with
## apt-get when missing and apt-get is there; otherwise those tests fail saying how.
browser:
	@missing=""; \
	if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
		&& ! command -v google-chrome >/dev/null 2>&1 && [ -z "$$AUTOPILOT_CHROMIUM" ]; then \
		missing=" chromium"; fi; \
	if command -v dpkg-query >/dev/null 2>&1 \
		&& ! dpkg-query -W -f='$${Status}' fonts-noto-cjk 2>/dev/null | grep -q "ok installed"; then \
		missing="$$missing fonts-noto-cjk"; fi; \
	if [ -z "$$missing" ]; then \
		echo "browser: $$(command -v chromium || command -v chromium-browser || command -v google-chrome || echo $$AUTOPILOT_CHROMIUM) (report browser tests)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		echo "browser: installing$$missing with apt-get (the report's browser tests run Chromium)"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing \
			|| echo "browser: apt-get install$$missing FAILED; the report's browser tests will fail until it is installed"; \
	else \
		echo "browser: missing$$missing and no apt-get: install Chromium (or set AUTOPILOT_CHROMIUM) for the report's browser tests"; \
	fi

## Every test: unit, integration (moto from template.yaml), scenarios, template.
test: setup browser
	$(BIN)/pytest

## `make test` again, twice, with the wall clock moved (time-machine, selected by
## $AUTOPILOT_TEST_WALL_CLOCK in tests/conftest.py; it keeps running from there):
## the last evening of a month in Shanghai (2027-01-31T16:30Z = 00:30 on 1 February,
## TZ=Asia/Shanghai), and two minutes before New York springs forward
## (2027-03-14T06:58Z = 01:58 EST, TZ=America/New_York: the suite runs across
## 02:00 EST -> 03:00 EDT). A test that reads the wall clock instead of
## autopilot.clock fails here, not on some future day.
test-moved-clock: test-moved-clock-shanghai test-moved-clock-new-york

test-moved-clock-shanghai: setup browser
	$(call moved-clock-test,Asia/Shanghai,2027-01-31T16:30:00Z)

test-moved-clock-new-york: setup browser
	$(call moved-clock-test,America/New_York,2027-03-14T06:58:00Z)

# $(call moved-clock-test,TZ,instant): pytest's exit code is make's (5 included).
define moved-clock-test
	@echo "== make test with the wall clock moved to $(2), TZ=$(1)"
	TZ=$(1) AUTOPILOT_TEST_WALL_CLOCK=$(2) $(BIN)/pytest
endef

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m autopilot.config.schema --check

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The template: cfn-lint and SAM's own validation with linting.
validate: setup
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)

build: setup
	$(BIN)/sam build --template template.yaml

deploy: build
	$(BIN)/sam deploy --guided

## AWS requests per operation, cold-start ratios (rewrites its sections of
## docs/benchmarks.md, keeps the others), then the dispatcher at scale and the
## simulated month and the lottery draw, which print the figures their sections record.
bench: setup
	$(BIN)/python benchmarks/run.py --out docs/benchmarks.md
	$(BIN)/python benchmarks/dispatch.py --sizes 10,1000,10000
	$(BIN)/python benchmarks/simulate_month.py --days 30 --members 1000
	$(BIN)/python benchmarks/lottery_draw.py --sizes 10000,1000000
	$(BIN)/python benchmarks/lottery_service.py --sizes 10000,1000000
	$(BIN)/python benchmarks/reminders.py --sizes 1000,10000 --out docs/benchmarks.md
	$(BIN)/python benchmarks/metrics_snapshot.py --sizes 100,10000 --out docs/benchmarks.md

## A fault campaign: many seeds of `autopilot simulate --faults standard` on
## config/faults.yaml (chat channels on a local fake platform), each compared with
## its own fault-free run; prints seeds × invariants (also out/faults/campaign.md).
## SEEDS=1-40 DAYS=7 MEMBERS=100 FAULTS='crash=0.05,...' to change it.
SEEDS ?= 1-12
DAYS ?= 7
MEMBERS ?= 100
FAULTS ?= standard
faults: setup
	$(BIN)/python -m autopilot_cli.campaign --seeds $(SEEDS) --days $(DAYS) \
		--members $(MEMBERS) --faults '$(FAULTS)' --out out/faults

clean:
	rm -rf $(VENV) .aws-sam out .pytest_cache .ruff_cache .mypy_cache .hypothesis
