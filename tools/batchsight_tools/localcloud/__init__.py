"""The embedded default: the cloud stack emulated on one machine (moto server, in-process Lambdas)."""
