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

.PHONY: setup demo test test-moved-clock test-moved-clock-shanghai test-moved-clock-new-york faketime lint format validate build deploy bench clean

$(STAMP): requirements-dev.txt layers/autopilot/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## A simulated week of the example config on the embedded moto backend.
demo: setup
	$(BIN)/autopilot config validate config/communities.yaml
	$(BIN)/autopilot schedule preview --config config/communities.yaml --from $(DEMO_START) --days 1
	$(BIN)/autopilot simulate --config config/communities.yaml --start $(DEMO_START) \
		--days 7 --members 200 --seed 7 --out out/demo

## Every test: unit, integration (moto from template.yaml), scenarios, template.
test: setup
	$(BIN)/pytest

## `make test` again, twice, with the wall clock moved by libfaketime (it keeps
## running from the given local time): the last evening of a month in Shanghai
## (00:30 on 1 February = 2027-01-31T16:30Z), and two minutes before New York
## springs forward (01:58 EST on 2027-03-14 = 06:58Z; the suite runs across
## 02:00 EST -> 03:00 EDT). Each run checks first that the clock really moved;
## a test that reads the wall clock instead of autopilot.clock fails here.
test-moved-clock: test-moved-clock-shanghai test-moved-clock-new-york

test-moved-clock-shanghai: setup faketime
	$(call moved-clock-test,Asia/Shanghai,2027-02-01 00:30:00,2027-01-31T16:30)

test-moved-clock-new-york: setup faketime
	$(call moved-clock-test,America/New_York,2027-03-14 01:58:00,2027-03-14T06:58)

# libfaketime from the system packages (Debian/Ubuntu `faketime`), installed if missing.
FIND_FAKETIME := for f in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 \
	/usr/local/lib/faketime/libfaketime.so.1; do [ -e "$$f" ] && echo "$$f" && break; done

faketime:
	@if [ -z "$$($(FIND_FAKETIME))" ]; then \
		echo "libfaketime missing: apt-get install faketime"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq faketime; \
	fi
	@[ -n "$$($(FIND_FAKETIME))" ] || { echo "libfaketime not found after install" >&2; exit 1; }

# $(call moved-clock-test,TZ,local start "YYYY-MM-DD HH:MM:SS",expected UTC "YYYY-MM-DDTHH:MM")
# FAKETIME="@..." starts the wall clock there and lets it run; the monotonic clock
# stays real (FAKETIME_DONT_FAKE_MONOTONIC) so that timeouts and rate limits behave.
define moved-clock-test
	@echo "== make test with the wall clock at $(2) $(1) ($(3)Z)"
	export LD_PRELOAD="$$($(FIND_FAKETIME))" TZ="$(1)" FAKETIME="@$(2)" \
		FAKETIME_DONT_FAKE_MONOTONIC=1 && \
	$(BIN)/python -c 'import sys; from datetime import UTC, datetime, timedelta; \
		now = datetime.now(UTC); want = datetime.fromisoformat(sys.argv[1] + "+00:00"); \
		sys.exit(0 if timedelta(0) <= now - want < timedelta(minutes=1) \
		else f"libfaketime did not move the clock: {now:%FT%TZ}, want {want:%FT%TZ}")' "$(3)" && \
	$(BIN)/pytest
endef

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

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

## AWS requests per operation, cold-start import ratios, simulation throughput.
bench: setup
	$(BIN)/python benchmarks/run.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .aws-sam out .pytest_cache .ruff_cache .mypy_cache .hypothesis
