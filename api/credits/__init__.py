"""Credit balances and the ledger, as the projection keeps them; plans and prices."""
