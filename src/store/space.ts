// Room for a blob before it is downloaded: the store's free space, after eviction tried to make
// room where a size cap is set. A blob that cannot fit is streamed to the client, not stored.
import type { BlobStore, SpaceAware } from "./store.js";

/** Slack for the file system's own blocks and the records written next to a blob. */
export const ROOM_MARGIN = 64 * 1024;

/** Why `size` bytes cannot be stored now, or undefined when they can (or nobody can tell). */
export async function lacksRoom(store: BlobStore, size: number): Promise<string | undefined> {
  const space = store as BlobStore & Partial<SpaceAware>;
  if (!space.freeBytes) return undefined;
  try {
    let free = await space.freeBytes();
    if (free >= size + ROOM_MARGIN) return undefined;
    if (space.makeRoom) {
      await space.makeRoom(size + ROOM_MARGIN - free);
      free = await space.freeBytes();
      if (free >= size + ROOM_MARGIN) return undefined;
    }
    return `not enough free space in the cache for ${size} bytes (${free} free after eviction)`;
  } catch {
    // statfs unsupported or failing: writing will tell.
    return undefined;
  }
}

/** The store's free bytes, or undefined when it cannot tell. */
export async function freeSpace(store: BlobStore): Promise<number | undefined> {
  const space = store as BlobStore & Partial<SpaceAware>;
  return space.freeBytes ? space.freeBytes().catch(() => undefined) : undefined;
}
