"""LLRP (EPCglobal Low Level Reader Protocol 1.0.1) reader client and simulator."""
