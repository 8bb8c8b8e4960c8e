"""The Faust stream processors: dedupe, credits, plan limits, priority routing, cancellation."""
