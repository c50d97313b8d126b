"""proxyrank: do small proxy models rank pretraining data recipes like a tuned large model?"""
