"""Outgoing webhooks: signed job notifications, their dispatcher, signing secrets and the log.

The dispatcher (``genstream-webhooks``) records a delivery for every terminal lifecycle event
of a job that has a ``webhook_url``, then POSTs it, signed the Standard Webhooks way, with
retries. The API serves each user's signing secret and each job's delivery log.
"""
