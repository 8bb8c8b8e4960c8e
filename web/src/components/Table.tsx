import type { ComponentChildren } from "preact";

interface Props {
  columns: ComponentChildren[];
  rows: ComponentChildren[][];
  caption?: string;
}

/** A table with a header row, scrolling sideways on its own where the page is narrow. */
export function Table({ columns, rows, caption }: Props) {
  return (
    <div class="table">
      <table>
        {caption && <caption>{caption}</caption>}
        <thead>
          <tr>
            {columns.map((column) => (
              <th scope="col">{column}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((cells) => (
            <tr>
              {cells.map((cell) => (
                <td>{cell}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
