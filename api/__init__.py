"""The REST API: submission, reads, SSE, uploads, webhooks, admin, health."""
