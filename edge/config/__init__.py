"""Site configuration: marshmallow schemas and the loader."""

from edge.config.errors import ConfigError
from edge.config.site import SiteConfig, load_site, parse_site

__all__ = ["ConfigError", "SiteConfig", "load_site", "parse_site"]
