"""Build hook: wheels carry both editor plugins, so `inpaint-backend install-plugins` works without a checkout.

The plugin folders stay where they are in the source tree (krita_plugin/, gimp_plugin/); a built wheel holds
copies under backend/plugins/, where backend/install looks first. Everything else is in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PLUGINS = {"krita_plugin": ("docs", "ci"), "gimp_plugin": ("docs", "ci")}  # folder -> what the installers never copy


class BuildWithPlugins(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the plugins from the checkout itself
            return
        for folder, skip in PLUGINS.items():
            target = Path(self.build_lib) / "backend" / "plugins" / folder
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *skip))


setup(cmdclass={"build_py": BuildWithPlugins})
