import { useMemo } from "react";
import { encode } from "uqr";

/**
 * A QR code drawn as inline SVG, computed in the browser: the secret it carries never
 * leaves the page (no image service), and it fits the CSP (no inline scripts, no data fetch).
 */
export function QrCode({
  value,
  label,
  className = "size-48",
  testId,
}: {
  value: string;
  label: string;
  className?: string;
  testId?: string;
}) {
  const { size, path } = useMemo(() => {
    const qr = encode(value, { ecc: "M", border: 4 });
    let d = "";
    qr.data.forEach((row, y) =>
      row.forEach((dark, x) => {
        if (dark) d += `M${x} ${y}h1v1h-1z`;
      }),
    );
    return { size: qr.size, path: d };
  }, [value]);

  return (
    <svg
      role="img"
      aria-label={label}
      data-testid={testId}
      viewBox={`0 0 ${size} ${size}`}
      shapeRendering="crispEdges"
      className={`rounded-md bg-white ${className}`}
    >
      <rect width={size} height={size} fill="#ffffff" />
      <path d={path} fill="#000000" />
    </svg>
  );
}
