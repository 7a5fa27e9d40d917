// Inserting the marked mirror-kit block into Vagrantfiles of different shapes: it lands inside
// Vagrant.configure before the first provisioner (else just before its end), uses the file's block
// variable, and stays valid Ruby.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { GenerateError } from "../../src/generate/errors.js";
import { resolveSettings } from "../../src/generate/settings.js";
import { editVagrantfile } from "../../src/generate/vagrant.js";
import { tempDir } from "./support.js";

const s = resolveSettings({});
const edit = (text: string) => editVagrantfile(text, "Vagrantfile", s, false);

function rubyOk(text: string): void {
  const file = join(tempDir("mk-rb-"), "Vagrantfile");
  writeFileSync(file, text);
  expect(execFileSync("ruby", ["-c", file], { encoding: "utf8" })).toContain("Syntax OK");
}

describe("editVagrantfile", () => {
  test.each([
    ["single quotes and |vm_config|", "Vagrant.configure('2') do |vm_config|\n  vm_config.vm.box = 'x'\nend\n", "vm_config.vm.provision"],
    ["nested blocks, if and a heredoc with `end` inside", 'Vagrant.configure("2") do |config|\n  $s = <<-SCRIPT\n    if true; then echo; fi\nend\n  SCRIPT\n  config.vm.define "a" do |a|\n    if ENV["X"]\n      a.vm.box = "y"\n    end\n  end\nend\n', "  config.vm.provision"],
    ["one-line do...end blocks", 'Vagrant.configure("2") do |config|\n  config.vm.provider("virtualbox") { |vb| vb.memory = 1 }\n  [1].each do |i| puts i end\nend\n', "  config.vm.provision"],
    ["code after the configure block", 'Vagrant.configure("2") do |config|\n  config.vm.box = "x"\nend\n\ndef helper\n  1\nend\n', "  config.vm.provision"],
  ])("%s", (_name, input, expected) => {
    const out = edit(input);
    expect(out).toContain(expected);
    rubyOk(out);
    const lines = out.split("\n");
    const marker = lines.findIndex((l) => l.includes("<<< mirror-kit <<<"));
    expect(lines.slice(marker + 1).find((l) => l.trim() !== "")).toBe("end");
    expect(edit(out)).toBe(out);
  });

  // Vagrant runs provisioners in file order: a `docker` provisioner that pulls must come after the wiring
  // (found by a real `vagrant up`, test/e2e/vagrant-up.test.ts).
  test.each([
    ["a top-level provisioner with its comment", 'Vagrant.configure("2") do |config|\n  config.vm.box = "x"\n\n  # images the app needs\n  config.vm.provision "docker" do |d|\n    d.pull_images "busybox"\n  end\nend\n', "  # images the app needs"],
    ["a provisioner inside an if", 'Vagrant.configure("2") do |c|\n    c.vm.box = "x"\n    if ENV["D"]\n        c.vm.provision "docker"\n    end\nend\n', '    if ENV["D"]'],
    ["a provisioner inside a define", 'Vagrant.configure("2") do |config|\n  config.vm.define "web" do |web|\n    web.vm.provision "shell", inline: "true"\n  end\nend\n', '  config.vm.define "web" do |web|'],
  ])("goes before the first provisioner: %s", (_name, input, statement) => {
    const out = edit(input);
    rubyOk(out);
    const lines = out.split("\n");
    const marker = lines.findIndex((l) => l.includes("<<< mirror-kit <<<"));
    expect(lines.slice(marker + 1).find((l) => l.trim() !== "")).toBe(statement);
    expect(lines.findIndex((l) => l.includes("config.vm.provision \"mirror-kit\"") || l.includes("c.vm.provision \"mirror-kit\""))).toBeLessThan(lines.findIndex((l) => / (\w+)\.vm\.provision "(docker|shell)"/.test(l)));
    expect(edit(out)).toBe(out);
  });

  test.each([
    ["a begin marker without its end", 'Vagrant.configure("2") do |config|\n  # >>> mirror-kit >>>\nend\n', /markers are damaged/],
    ["two begin markers", 'Vagrant.configure("2") do |config|\n  # >>> mirror-kit >>>\n  # <<< mirror-kit <<<\n  # >>> mirror-kit >>>\n  # <<< mirror-kit <<<\nend\n', /markers are damaged/],
    ["an extra end", 'Vagrant.configure("2") do |config|\n  end\nend\n', /cannot find the "end"/],
  ])("%s is refused", (_name, input, message) => {
    const err = (() => {
      try {
        edit(input);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(GenerateError);
    expect((err as Error).message).toMatch(message);
  });
});
