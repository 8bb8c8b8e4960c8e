import { decode, isBlurhashValid } from "blurhash";
import { useEffect, useRef } from "preact/hooks";

const SIZE = 32;

/** A BlurHash painted into a small canvas that CSS stretches to the picture's shape. */
export function BlurHash({ hash, width, height }: { hash: string; width: number; height: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const target = canvas.current?.getContext("2d");
    if (!target || !isBlurhashValid(hash).result) return;
    const pixels = decode(hash, SIZE, SIZE);
    const image = target.createImageData(SIZE, SIZE);
    image.data.set(pixels);
    target.putImageData(image, 0, 0);
  }, [hash]);
  return (
    <canvas
      ref={canvas}
      class="blurhash"
      width={SIZE}
      height={SIZE}
      data-blurhash={hash}
      style={{ aspectRatio: `${width} / ${height}` }}
      role="img"
      aria-label="Placeholder of the picture being made"
    />
  );
}
