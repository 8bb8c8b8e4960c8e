// Validates Strimzi resources with the validators that @kubernetes-models/strimzi-kafka-operator
// generates from Strimzi's CRD schemas (installed by infra/setup.sh deploy-schemas).
// Usage: node strimzi_validate.mjs PACKAGE_DIR < resources.json (a JSON array)
// Prints a JSON array with, per resource, null when valid or its errors.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const schemas = pathToFileURL(`${process.argv[2]}/_schemas/`);
const resources = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const resource of resources) {
  const [group, version] = resource.apiVersion.split("/");
  const stem = group.split(".").map((part) => part[0].toUpperCase() + part.slice(1)).join("");
  const file = `${stem}${version[0].toUpperCase()}${version.slice(1)}${resource.kind}.js`;
  let validate;
  try {
    ({ validate } = await import(new URL(file, schemas)));
  } catch (error) {
    results.push([{ message: `no validator ${file}: ${error.message}` }]);
    continue;
  }
  results.push(validate(resource) ? null : validate.errors);
}
process.stdout.write(JSON.stringify(results));
