// A sort buffer grown by realloc doubling to 32 MiB, filled, freed; then the
// program builds a 64 MiB cache of ~4.3 KB blocks (like sqlite's page cache).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static long rss_kb(void){ long a,b; FILE*f=fopen("/proc/self/statm","r"); fscanf(f,"%ld %ld",&a,&b); fclose(f); return b*4; }
int main(int argc,char**argv){
  size_t big = (argc>1? atol(argv[1]):32) << 20;
  size_t nsmall = (argc>2? atol(argv[2]):64) << 20;
  char* p=NULL; size_t n=256<<10;
  for(;;){ p=realloc(p,n+8); memset(p,1,n); if(n>=big) break; n*=2; }
  free(p);
  size_t cnt = nsmall/4312; char** v=malloc(cnt*sizeof(char*));
  for(size_t i=0;i<cnt;i++){ v[i]=malloc(4312); memset(v[i],2,4312); }
  printf("after build: rss %ld KB\n", rss_kb());
  sleep(2);
  free(malloc(16));
  printf("after 2s idle: rss %ld KB\n", rss_kb());
  for(size_t i=0;i<cnt;i++) free(v[i]);
  free(v);
  return 0;
}
