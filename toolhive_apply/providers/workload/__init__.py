"""The workload resource kind: spec, Docker create arguments, observation, proxy, isolation, readiness, images."""
