# The two commands of the README: `make run` and `make test`. Everything else is a helper.
# On a fresh machine with only python3, each creates .venv and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test unit peers conformance lint types contracts pytest bench bench-storage bench-broker bench-framework crash-full reliability clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shoal needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/shoal broker --data-dir ./shoal-data

test: lint types contracts peers pytest

# Every peer the tests drive (scripts/peers/*.sh): each installs its peer when missing and fails
# loudly when it cannot; no test is ever skipped for a missing peer.
peers:
	@set -e; for peer in scripts/peers/*.sh; do \
		echo "== peer: $$peer"; \
		bash "$$peer" || { echo "== FAILED: $$peer could not provide its peer" >&2; exit 1; }; \
	done

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) peers
	$(BIN)/pytest $(PYTEST_ARGS)

# The fast loop (about a minute on 2 cores): the in-process tests, which need no peer (no Kafka
# JVM, Redis, RabbitMQ, NATS, kcat, franz-go or package build: the `peer` marker, derived in
# tests/support/peers.py), start no process or server (`integration`) and are not `slow`. No
# `peers` prerequisite: it runs on a machine without them. Widen it with UNIT_MARKERS, e.g.
# make unit UNIT_MARKERS='not peer and not slow' (adds the embedded-broker tests, ~7 minutes).
UNIT_MARKERS ?= not peer and not slow and not integration
unit: $(STAMP)
	$(BIN)/pytest -q -m "$(UNIT_MARKERS)" $(PYTEST_ARGS)

# Benchmarks print figures; they are not tests and assert nothing about time.
# bench/compare.py runs shoal, Apache Kafka, Redis, RabbitMQ and NATS in turn (about ten minutes)
# and writes bench/results/compare.{md,json,png}.
bench: bench-storage bench-broker bench-framework peers
	$(BIN)/python bench/compare.py

bench-framework: $(STAMP) peers
	$(BIN)/python bench/framework.py

bench-storage: $(STAMP)
	$(BIN)/python bench/storage.py

bench-broker: $(STAMP)
	$(BIN)/python bench/produce_consume.py

# The crash loops run a quick mode inside `make test`; this is the long mode.
crash-full: $(STAMP)
	SHOAL_CRASH_LOOPS=500 $(BIN)/pytest -m slow tests/storage
	SHOAL_IDEMPOTENCE_KILLS=50 $(BIN)/pytest -m slow tests/broker/idempotence/test_crash_loop.py

# Group churn, the issue's minute of 20 consumers joining and leaving: a classic group
# (tests/coordinator/groups/test_churn.py; `make test` churns 20 s) and a KIP-848 one
# (churn848-full below; `make test` churns 6 s).
.PHONY: churn-full
churn-full: $(STAMP) churn848-full
	SHOAL_CHURN_SECONDS=60 $(BIN)/pytest tests/coordinator/groups/test_churn.py $(PYTEST_ARGS)

# The reliability suite's full mode (tests/reliability): 500 broker SIGKILLs, 100 pauses, 100
# power losses and 50 disk-full episodes under the checked workload; `make test` runs a quick mode.
# Issue 19, faults slice: 1,000 connection cuts, 100 consumer kills in rebalances, 50 fsync EIO
# failures with restarts, 50 clock jumps (each one long workload; quick mode in `make test`).
RELIABILITY_FAULTS_FULL = SHOAL_RELIABILITY_CUTS=1000 SHOAL_RELIABILITY_CONSUMER_KILLS=100 SHOAL_RELIABILITY_FSYNC_ERRORS=50 SHOAL_RELIABILITY_CLOCK_JUMPS=50
# Issue 19, transactions slice: 100 broker SIGKILLs under the consume-transform-produce copier.
# Issue 14, must-show 2: 500 SIGKILLs of the exactly-once apps (framework and raw confluent-kafka
# loop) and of the broker (test_eos_app_kills.py; `make test` runs 54, about 80 s).
RELIABILITY_TXN_FULL = SHOAL_RELIABILITY_TXN_KILLS=100 SHOAL_RELIABILITY_EOS_KILLS=500
reliability: $(STAMP)
	$(RELIABILITY_TXN_FULL) SHOAL_RELIABILITY_KILLS=500 SHOAL_RELIABILITY_PAUSES=100 SHOAL_RELIABILITY_POWER_LOSSES=100 SHOAL_RELIABILITY_DISK_FULL=50 SHOAL_RELIABILITY_PARTITIONS=10000 $(RELIABILITY_FAULTS_FULL) $(BIN)/pytest -s tests/reliability $(PYTEST_ARGS)

# Differential conformance: the same client scenarios against Apache Kafka and shoal.
conformance: $(STAMP) peers
	$(BIN)/pytest tests/differential $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis shoal-data

# The order-processing saga example (examples/orders): four services on an embedded broker.
# Another broker: make example-orders ORDERS_ARGS='--broker kafka://127.0.0.1:9092'
.PHONY: example-orders
example-orders: $(STAMP)
	$(BIN)/python -m examples.orders $(ORDERS_ARGS)

# The package a user installs (also part of `make test`): the wheel and the sdist, each installed
# into a fresh venv without dev extras, run the CLI, a broker round trip and the orders example.
.PHONY: check-install
check-install: $(STAMP)
	$(BIN)/pytest tests/packaging $(PYTEST_ARGS)

# -- log compaction (issue 15, slice C): shoal's cleaner against Kafka's on the same data
# (cleaning MB/s, produce p99 while cleaning); writes bench/results/compaction.json.
.PHONY: bench-compaction
bench-compaction: $(STAMP) peers
	$(BIN)/python bench/compaction.py

# metrics (issue 17): /metrics scrape time with 1,000 partitions and 100 groups, and produce
# throughput with a scrape every second against none (a few minutes; prints figures, asserts none).
.PHONY: bench-metrics
bench-metrics: $(STAMP)
	$(BIN)/python bench/metrics_scrape.py $(BENCH_METRICS_ARGS)

# Transactions (issue 14): the transactional SIGKILL loop's long mode (`make test` kills 3 times).
.PHONY: txn-crash-full
txn-crash-full: $(STAMP)
	SHOAL_TXN_CRASH_KILLS=50 $(BIN)/pytest -m slow tests/broker/transactions/test_txn_crash_loop.py

# Issue 14, must-show 2, alone: 500 SIGKILLs of the exactly-once apps and the broker (15
# minutes on the loaded 2-core VM; the broker restarts from the tests' fork server). The seed:
# SHOAL_RELIABILITY_EOS_SEED.
.PHONY: eos-kills-full
eos-kills-full: $(STAMP)
	SHOAL_RELIABILITY_EOS_KILLS=500 $(BIN)/pytest -s tests/reliability/test_eos_app_kills.py $(PYTEST_ARGS)

# -- share groups (issue 16, slice Q): the lock-timeout differential scenario waits out Kafka's
# minimum record lock (15 s) on both brokers; `make test` leaves it out for its time budget.
.PHONY: share-lock-differential
share-lock-differential: $(STAMP) peers
	SHOAL_SHARE_LOCK_DIFFERENTIAL=1 $(BIN)/pytest tests/differential/test_differential_share_groups.py -k lock $(PYTEST_ARGS)

# -- KIP-848 churn (issue 16, slice Q): the issue's minute of 20-member churn on a
# group.protocol=consumer group; `make test` churns for 6 s. (`make churn-full` runs it too.)
.PHONY: churn848-full
churn848-full: $(STAMP)
	SHOAL_CHURN848_SECONDS=60 $(BIN)/pytest -s tests/coordinator/groups/test_churn_consumer_protocol.py $(PYTEST_ARGS)

# -- share consumers SIGKILLed at random (issue 16, slice Q): the issue's 10 consumers and many
# kills; `make test` runs 3 consumers and 3 kills.
.PHONY: share-kills-full
share-kills-full: $(STAMP)
	SHOAL_SHARE_CONSUMERS=10 SHOAL_SHARE_KILLS=30 $(BIN)/pytest -s tests/coordinator/groups/test_share_sigkill.py -k random $(PYTEST_ARGS)

# -- market data (issue 20, slice K): the feed, bars/VWAP on event-time windows, the latest-quote
# table, alerts and the latency monitor on an embedded broker. Another broker or rate:
# make example-market MARKET_ARGS='--broker kafka://127.0.0.1:9092 --registry http://127.0.0.1:8080 --rate 20000'
MARKET_ARGS ?= --rate 2000 --seconds 5
.PHONY: example-market
example-market: $(STAMP)
	$(BIN)/python -m examples.market $(MARKET_ARGS)

# The pipeline under load on shoal broker and the Apache Kafka peer (a benchmark: not in CI);
# writes bench/results/market.json and market.png. BENCH_MARKET_ARGS='--smoke' for a quick look.
.PHONY: bench-market
bench-market: $(STAMP)
	$(BIN)/python bench/market.py $(BENCH_MARKET_ARGS)

# Issue 21 (cluster slice): the framework app and the registry on a 3-broker Kafka cluster
# through repeated broker SIGKILLs (tests/peers/cluster/test_failover.py); `make test` runs one kill.
.PHONY: cluster-soak
CLUSTER_KILLS ?= 10
cluster-soak: $(STAMP) peers
	SHOAL_CLUSTER_KILLS=$(CLUSTER_KILLS) $(BIN)/pytest -s tests/peers/cluster/test_failover.py $(PYTEST_ARGS)

# The orders example through broker SIGKILLs on the cluster (tests/peers/cluster/test_orders.py):
# `make test` runs one round (one kill); this runs CLUSTER_ORDERS_ROUNDS, killing the nodes in turn.
.PHONY: cluster-orders
CLUSTER_ORDERS_ROUNDS ?= 6
cluster-orders: $(STAMP) peers
	SHOAL_CLUSTER_ORDERS_ROUNDS=$(CLUSTER_ORDERS_ROUNDS) $(BIN)/pytest -s tests/peers/cluster/test_orders.py $(PYTEST_ARGS)

# The move from shoal to the cluster with MirrorMaker 2 (tests/peers/cluster/test_migration.py).
.PHONY: cluster-migrate
cluster-migrate: $(STAMP) peers
	SHOAL_CLUSTER_MIGRATION=1 $(BIN)/pytest -s tests/peers/cluster/test_migration.py $(PYTEST_ARGS)

# Issue 19, reliability slice: coverage-guided fuzzing (atheris) of the request decoder, record
# batches, the registry's schema parsers, the admin API and SASL, from tests/fuzz/corpus. `make test`
# runs 3,000 inputs per target; this runs FUZZ_RUNS per target (10 million over the decoder and
# record paths by default: several minutes per target on 2 cores).
FUZZ_RUNS ?= 5000000
.PHONY: fuzz
fuzz: $(STAMP)
	SHOAL_FUZZ_RUNS=$(FUZZ_RUNS) SHOAL_FUZZ_ADMIN_RUNS=$(or $(FUZZ_ADMIN_RUNS),100000) $(BIN)/pytest -s --timeout=3600 tests/fuzz $(PYTEST_ARGS)

# -- share-group bench (issue 16, slice Q): consume-and-acknowledge throughput and redelivery
# latency with 1, 4 and 16 consumers, shoal against Apache Kafka 4.4 and RabbitMQ quorum queues
# in the same run; writes bench/results/share.{md,json,png}. BENCH_SHARE_ARGS='--quick' for a look.
.PHONY: bench-share
bench-share: $(STAMP) peers
	$(BIN)/python bench/share.py $(BENCH_SHARE_ARGS)

# -- the documentation site (issue 21, docs slice): the settings and command-line references are
# generated from the code (tests/docs/test_site.py fails when a committed page drifts), then
# MkDocs builds docs/ into site/ with --strict: a warning, a broken internal link or anchor, or a
# page left out of mkdocs.yml's nav fails the build. External links are not fetched.
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python -m shoal.cli.settings_reference docs/settings.md
	$(BIN)/python -m shoal.cli.cli_reference docs/cli.md
	$(BIN)/python -m examples.orders.asyncapi_page docs/asyncapi-orders.md
	$(BIN)/python -m examples.market.asyncapi_page docs/asyncapi-market.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The documentation's external links fetched (needs the Internet; the offline link checks are
# tests/docs/test_links.py, in `make unit`).
.PHONY: linkcheck-external
linkcheck-external: $(STAMP)
	$(BIN)/python scripts/check_external_links.py

# Deterministic simulation (issue 19, slice R): thousands of seeds of the broker's storage and
# coordinators on a fake clock and the fault-injecting disk; SEED=n replays one seed (its trace
# is printed on failure), STEPS sets the steps per seed.
.PHONY: simulate
SIM_SEEDS ?= 3000
SIM_STEPS ?= 200
simulate: $(STAMP)
	SHOAL_SIM_SEED=$(SEED) SHOAL_SIM_SEEDS=$(SIM_SEEDS) SHOAL_SIM_STEPS=$(or $(STEPS),$(SIM_STEPS)) $(BIN)/pytest -s --timeout=7200 tests/simulation/test_simulation.py -k every_seed $(PYTEST_ARGS)

# -- transactions bench (issue 14, slice T): transactional produce (transactions of 1,000 records
# of 100 B, 8 partitions) and the App's exactly_once=True subscriber, shoal against Apache Kafka
# 4.4 and against themselves without transactions, in the same run; writes
# bench/results/transactions.{md,json}. BENCH_TRANSACTIONS_ARGS='--quick' for a look,
# '--systems shoal --profile /tmp/shoal.prof' to profile the broker.
.PHONY: bench-transactions
bench-transactions: $(STAMP) peers
	$(BIN)/python bench/transactions.py $(BENCH_TRANSACTIONS_ARGS)
