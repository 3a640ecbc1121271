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

.PHONY: setup demo test lint format validate build deploy bench clean

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
