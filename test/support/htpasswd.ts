// htpasswd files for distribution's basic auth, which accepts bcrypt hashes only.
// No npm bcrypt here: perl's crypt() is glibc/libxcrypt's, which implements $2b$ on Debian 12.
import { randomInt } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { run } from "./process.js";

const BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export async function bcryptHash(password: string, cost = 5): Promise<string> {
  // The 22nd salt character carries only 2 bits; libxcrypt rejects the other characters there.
  let salt = "";
  for (let i = 0; i < 21; i++) salt += BCRYPT_ALPHABET[randomInt(BCRYPT_ALPHABET.length)];
  salt += ".Oeu"[randomInt(4)];
  const setting = `$2b$${String(cost).padStart(2, "0")}$${salt}`;
  // Password and salt go through the environment so no shell or perl quoting is involved.
  const { stdout } = await run("perl", ["-e", 'print crypt($ENV{MK_PW}, $ENV{MK_SALT})'], {
    env: { ...process.env, MK_PW: password, MK_SALT: setting },
  });
  if (!stdout.startsWith(setting)) throw new Error(`crypt() did not produce a bcrypt hash (got ${JSON.stringify(stdout)})`);
  return stdout;
}

export async function writeHtpasswd(path: string, users: Record<string, string>): Promise<void> {
  const lines: string[] = [];
  for (const [user, password] of Object.entries(users)) lines.push(`${user}:${await bcryptHash(password)}`);
  await writeFile(path, `${lines.join("\n")}\n`, { mode: 0o600 });
}
