"""`infernode tune bench`: what a tuning profile buys, measured on the node's own
worker (stats.py: the comparison, pure; load.py: the load; runner.py: the rounds)."""
