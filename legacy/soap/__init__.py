"""The SOAP back-end kind's simulator (agencies OSS, LAND, TAX, PTR)."""

from legacy.soap.simulator import SoapSimulator

__all__ = ["SoapSimulator"]
