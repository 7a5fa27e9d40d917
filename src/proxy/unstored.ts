// Manifests and tag records fetched while the cache could not be written (read-only, full, failing
// disk): kept in memory, bounded, so such a disk does not turn every pull into an upstream GET
// whose answer is thrown away. Nothing here survives a restart; the disk stays the cache.
import type { StoredManifest, TagRecord } from "../store/store.js";

const MAX_BYTES = 32 * 1024 * 1024;
const MAX_TAGS = 10_000;

export class Unstored {
  private readonly manifests = new Map<string, StoredManifest>();
  private readonly tags = new Map<string, TagRecord>();
  private bytes = 0;

  getManifest(digest: string): StoredManifest | undefined {
    return this.manifests.get(digest);
  }

  putManifest(digest: string, manifest: StoredManifest): void {
    if (this.manifests.has(digest)) return;
    this.manifests.set(digest, manifest);
    this.bytes += manifest.body.byteLength;
    for (const [k, m] of this.manifests) {
      if (this.bytes <= MAX_BYTES) break;
      this.manifests.delete(k);
      this.bytes -= m.body.byteLength;
    }
  }

  getTag(key: string): TagRecord | undefined {
    return this.tags.get(key);
  }

  putTag(key: string, record: TagRecord): void {
    this.tags.delete(key);
    this.tags.set(key, record);
    if (this.tags.size > MAX_TAGS) this.tags.delete(this.tags.keys().next().value as string);
  }

  deleteTag(key: string): void {
    this.tags.delete(key);
  }
}
