"""Packaging: the metadata is in pyproject.toml.  The one thing said here is the file
twistd looks for: ``twisted/plugins/xvbd_plugin.py`` is installed into Twisted's plugin
directory (there is no ``__init__.py`` of ours there), which is how ``twistd xvbd`` finds us.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["xvbd", "xvbd.*"]), "twisted.plugins"],
    package_data={"xvbd.store.schema": ["*.sql"], "xvbd.web": ["templates/**/*", "static/*"],
                  "xvbd.accounting": ["radius.dictionary"],
                  "twisted.plugins": ["xvbd_plugin.py"]},
)
