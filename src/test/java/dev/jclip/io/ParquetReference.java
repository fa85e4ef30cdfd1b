package dev.jclip.io;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.parquet.ParquetReadOptions;
import org.apache.parquet.column.page.PageReadStore;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.convert.GroupRecordConverter;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.io.ColumnIOFactory;
import org.apache.parquet.io.LocalInputFile;
import org.apache.parquet.io.MessageColumnIO;
import org.apache.parquet.io.RecordReader;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;

/** Reads Parquet files with parquet-java (the reference implementation), for tests. */
public final class ParquetReference {
  /** A file as parquet-java sees it: its schema and its rows as Java values (null for nulls). */
  public record Table(MessageType schema, long declaredRows, List<List<Object>> rows) {
    public List<String> columnNames() {
      return schema.getFields().stream().map(Type::getName).toList();
    }

    public List<Object> column(String name) {
      int i = schema.getFieldIndex(name);
      return rows.stream().map(r -> r.get(i)).toList();
    }
  }

  private ParquetReference() {}

  public static Table read(Path file) throws IOException {
    ParquetReadOptions options = ParquetReadOptions.builder(new PlainParquetConfiguration()).build();
    try (ParquetFileReader reader = new ParquetFileReader(new LocalInputFile(file), options)) {
      MessageType schema = reader.getFooter().getFileMetaData().getSchema();
      long declared = reader.getRecordCount();
      List<List<Object>> rows = new ArrayList<>();
      MessageColumnIO io = new ColumnIOFactory().getColumnIO(schema);
      PageReadStore pages;
      while ((pages = reader.readNextRowGroup()) != null) {
        RecordReader<Group> rr = io.getRecordReader(pages, new GroupRecordConverter(schema));
        for (long r = 0; r < pages.getRowCount(); r++) rows.add(toRow(schema, rr.read()));
      }
      return new Table(schema, declared, rows);
    }
  }

  private static List<Object> toRow(MessageType schema, Group g) {
    List<Object> row = new ArrayList<>();
    for (int i = 0; i < schema.getFieldCount(); i++) {
      if (g.getFieldRepetitionCount(i) == 0) {
        row.add(null);
        continue;
      }
      PrimitiveType t = schema.getType(i).asPrimitiveType();
      row.add(
          switch (t.getPrimitiveTypeName()) {
            case BINARY -> {
              if (!(t.getLogicalTypeAnnotation() instanceof LogicalTypeAnnotation.StringLogicalTypeAnnotation)) {
                throw new AssertionError("BINARY column " + t.getName() + " is not annotated STRING");
              }
              yield g.getString(i, 0);
            }
            case INT32 -> g.getInteger(i, 0);
            case INT64 -> g.getLong(i, 0);
            case FLOAT -> g.getFloat(i, 0);
            case DOUBLE -> g.getDouble(i, 0);
            case BOOLEAN -> g.getBoolean(i, 0);
            default -> throw new AssertionError("unexpected type " + t);
          });
    }
    return row;
  }
}
