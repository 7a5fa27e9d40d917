// The end-to-end fixtures: a runnable multi-layer image with one large random layer, a runnable
// multi-arch OCI index, and a small image for the second upstream. New bytes every run.
import { randomUUID } from "node:crypto";
import { buildImage, buildIndex, type Image, type ImageIndex } from "../fixtures/image.js";
import { busyboxLayer, filesLayer, randomLayer, type Layer } from "../fixtures/layers.js";
import { uniqueImage } from "../fixtures/sets.js";

/**
 * The large layer: a few hundred MB of incompressible data is what makes a pull slow enough to
 * interrupt and what a second download would visibly cost. 200 MiB keeps CI within its time budget.
 */
export const BIG_LAYER_BYTES = 200 * 1024 * 1024;

export interface RunnableImage {
  image: Image;
  /** What the image's default command prints. */
  marker: string;
}

export interface BigImage extends RunnableImage {
  /** The large random layer. */
  big: Layer;
}

/** busybox rootfs + BIG_LAYER_BYTES of random data + a marker file; `cat`s the marker. */
export async function buildBigImage(): Promise<BigImage> {
  const marker = `mk-e2e-big-${randomUUID()}`;
  const big = await randomLayer("data/big.bin", BIG_LAYER_BYTES);
  const image = buildImage({
    layers: [await busyboxLayer(), big, await filesLayer({ "etc/mk-marker": `${marker}\n` })],
    cmd: ["cat", "/etc/mk-marker"],
  });
  return { image, marker, big };
}

/** A small runnable image (busybox + marker), Docker schema2 or OCI. */
export async function buildSmallImage(format: "docker" | "oci" = "docker"): Promise<RunnableImage> {
  const marker = `mk-e2e-small-${randomUUID()}`;
  const image = buildImage({
    format,
    layers: [await busyboxLayer(), await filesLayer({ "etc/mk-marker": `${marker}\n` })],
    cmd: ["cat", "/etc/mk-marker"],
  });
  return { image, marker };
}

export interface MultiArch {
  index: ImageIndex;
  amd64: RunnableImage;
  /** Never pulled by an amd64 client: its blobs must never cross the upstream link. */
  arm64: Image;
}

/** An OCI index over a runnable linux/amd64 image and a linux/arm64/v8 one. */
export async function buildMultiArch(): Promise<MultiArch> {
  const amd64 = await buildSmallImage("oci");
  const arm64 = await uniqueImage("oci", { os: "linux", architecture: "arm64", variant: "v8" });
  return { index: buildIndex([amd64.image, arm64], "oci"), amd64, arm64 };
}
