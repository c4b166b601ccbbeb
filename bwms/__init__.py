"""Common package of the bonded-warehouse system: the MQTT wire contract, EPC
decoding, the site file and the `bwms` command line. It imports neither `edge`
nor `hub`, so both halves share one definition of what crosses the wire."""

__version__ = "0.1.0"
