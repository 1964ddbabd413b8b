"""Pure analytics shared by services, evaluation and benchmarks: no Kafka, HTTP or SQL."""
