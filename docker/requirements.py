"""Print the project's requirements (with the given extras) from pyproject.toml, one a line, so the image can
install its dependencies in a layer of their own, before the source is copied and without it."""

import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    project = tomllib.load(file)["project"]
extras = project.get("optional-dependencies", {})
print("\n".join(project["dependencies"] + [req for name in sys.argv[2:] for req in extras[name]]))
