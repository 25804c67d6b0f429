"""DrNet reimplementation for the DrNet book (Denton & Birodkar, NIPS 2017)."""

__version__ = "0.1.0"
