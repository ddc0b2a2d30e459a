import { describe, expect, it } from "vitest";
import { adopt, origin, parseDefinitions, pickable } from "./definitions";
import type { LoopData } from "./types";

const GITHUB = { type: "http", baseUrl: "https://api.github.com" };
const DB = { type: "sql", url: "${DATABASE_URL}" };
const defs = parseDefinitions({
  connectors: { github: { definition: GITHUB, loops: ["pr-review"], variants: 1 }, db: { definition: DB, loops: ["a", "b"], variants: 2 } },
  subagents: { judge: { definition: { role: "verifier", connectors: ["db"] }, loops: ["pr-review"], variants: 1 } },
  skills: [{ name: "sql-review", description: "Review SQL", source: "project" }, "bare-skill"],
});

describe("team definitions", () => {
  it("reads the boot data, tolerating bare names", () => {
    expect(Object.keys(defs.connectors)).toEqual(["github", "db"]);
    expect(defs.skills.map((s) => s.name)).toEqual(["sql-review", "bare-skill"]);
    expect(parseDefinitions({}).connectors).toEqual({});
    expect(parseDefinitions({ connectors: ["x"] }).connectors.x.loops).toEqual([]);
  });

  it("offers the loop's own names first, then the team's others", () => {
    const data = { name: "x", connectors: { local: { type: "sql", url: "sqlite:///x" }, github: GITHUB } } as unknown as LoopData;
    expect(pickable(data, "connectors", defs)).toEqual(["local", "github", "db"]);
    expect(origin(data, "connectors", "github", defs)).toBe("this loop");
    expect(origin(data, "connectors", "db", defs)).toBe("copied from a (2 different definitions in the team)");
  });

  it("copies a picked connector's definition into the loop, once, and leaves the loop's own alone", () => {
    const mine = { type: "http", baseUrl: "https://github.example.com" };
    const data = { name: "x", connectors: { github: mine } } as unknown as LoopData;
    const out = adopt(data, "connectors", ["github", "db", "nobody-defines-this"], defs);
    expect(out.connectors).toEqual({ github: mine, db: DB });
    expect(adopt(out, "connectors", ["db"], defs)).toBe(out);
    expect(data.connectors).toEqual({ github: mine }); // not mutated
  });

  it("a copied subagent brings the connectors it uses", () => {
    const out = adopt({ name: "x" } as LoopData, "subagents", ["judge"], defs);
    expect(out).toEqual({ name: "x", subagents: { judge: { role: "verifier", connectors: ["db"] } }, connectors: { db: DB } });
  });
});

describe("adding a team name to the loop's own map", () => {
  it("copies the definition when the team has one, and nothing otherwise", () => {
    expect(adopt({ name: "x" } as LoopData, "connectors", ["github"], defs)).toEqual({ name: "x", connectors: { github: GITHUB } });
    const data = { name: "x" } as LoopData;
    expect(adopt(data, "connectors", ["unknown"], defs)).toBe(data);
  });
});
