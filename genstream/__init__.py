"""genstream's shared runtime kit: settings, Kafka, PostgreSQL, S3, logging and the CLI."""
